from core.infra.errors import Conflict, NotFound


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    message = "No webhook endpoint with this id."


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"
    message = "No webhook delivery with this id."


class DeliveryNotFailed(Conflict):
    code = "delivery_not_failed"
    message = "Only a failed delivery can be retried."
