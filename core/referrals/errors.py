from core.infra.errors import BadRequest, Conflict, InvalidInput, NotFound


class ActiveCodeExists(Conflict):
    code = "active_code_exists"
    message = "You already have an active referral code; delete it first."


class CodeTaken(Conflict):
    code = "code_taken"
    message = "This referral code has already been used; choose another."


class NoActiveCode(NotFound):
    code = "no_active_code"
    message = "You have no active referral code."


class ReferralCodeNotFound(NotFound):
    code = "referral_code_not_found"
    message = "No active referral code was found."


class ReferralCodeInvalid(BadRequest):
    code = "referral_code_invalid"
    message = "This referral code does not exist."


class ReferralCodeExpired(BadRequest):
    code = "referral_code_expired"
    message = "This referral code has expired or was deleted."


class ReferralCodeDeleted(ReferralCodeExpired):
    """The owner deleted it: the same API code, but the chat says which."""

    message = "This referral code was deleted by its owner."


class ReferralCodeExhausted(BadRequest):
    code = "referral_code_exhausted"
    message = "This referral code has reached its maximum number of uses."


class InvalidCodeRequest(InvalidInput):
    """A code request that breaks a rule (expiry window, code format, max_uses)."""
