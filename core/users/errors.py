from core.infra.errors import Conflict, InvalidInput, NotFound


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists."


class EmailUndeliverable(InvalidInput):
    code = "email_undeliverable"
    message = "This email address cannot receive mail."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, field="email")


class UserNotFound(NotFound):
    code = "user_not_found"
    message = "No such user."


class AlreadyRegistered(Conflict):
    code = "already_registered"
    message = "This Telegram account is already registered."


class OwnCode(Conflict):
    code = "own_code"
    message = "This is your own referral code."
