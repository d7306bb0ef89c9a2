from core.infra.errors import Conflict, NotFound


class ReferralNotFound(NotFound):
    code = "referral_not_found"
    message = "No referral with this id."


class AlreadyReviewed(Conflict):
    code = "already_reviewed"
    message = "This referral is not waiting for review."


class InsufficientBalance(Conflict):
    code = "insufficient_balance"
    message = "The balance may not go below zero."


class ExternalIdConflict(Conflict):
    code = "external_id_conflict"
    message = "This external_id was reported before with another user, event, amount or currency."


class CannotBlockOperator(Conflict):
    code = "cannot_block_operator"
    message = "Operators cannot be blocked; demote them from the command line first."


class ConversionNotFound(NotFound):
    code = "conversion_not_found"
    message = "No conversion with this external_id."
