from core.infra.errors import Conflict, NotFound


class JobNotFound(NotFound):
    code = "job_not_found"
    message = "No job with this id."


class JobNotFailed(Conflict):
    code = "job_not_failed"
    message = "Only a failed job can be retried."


class RetryItsDelivery(Conflict):
    code = "job_not_retryable"
    message = (
        "A webhook delivery's job is retried through its delivery: "
        "POST /api/v1/admin/deliveries/{id}/retry."
    )
