from core.infra.errors import Forbidden, NotFound, Unauthorized


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    message = "No API key with this id."


class NotAnOperator(Forbidden):
    code = "forbidden"
    message = "Only operators may do this."


class KeysNeedASuperuser(Forbidden):
    code = "forbidden"
    message = "API keys are managed with a superuser's token; a key cannot mint keys."


class BadApiKey(Unauthorized):
    code = "not_authenticated"
    message = "The API key is not valid."
