from core.errors import Forbidden, Unauthorized


class NotAuthenticated(Unauthorized):
    code = "not_authenticated"
    message = "Missing, invalid or expired access token."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Wrong email or password."


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is unknown, expired or already used."


class NotAllowed(Forbidden):
    code = "forbidden"
    message = "You may not see this."
