from core.infra.errors import BadRequest, Forbidden, Unauthorized


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    message = "Missing, invalid or expired access token."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Wrong email or password."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is unknown, expired or already used."


class AccountBlocked(Forbidden):
    code = "account_blocked"
    message = "This account is blocked."


class NotAllowed(Forbidden):
    code = "forbidden"
    message = "You may not see this."


class WrongPassword(Forbidden):
    """The signed-in user's own password, asked again before a sensitive change, was wrong."""

    code = "invalid_credentials"
    message = "The password is wrong."


class InvalidResetToken(BadRequest):
    code = "invalid_reset_token"
    message = "This password reset link is unknown, expired or already used."


class InvalidVerificationToken(BadRequest):
    code = "invalid_verification_token"
    message = "This verification link is unknown, expired or already used."
