from core.errors import Conflict, NotFound


class ReferralNotFound(NotFound):
    code = "referral_not_found"
    message = "No referral with this id."


class AlreadyReviewed(Conflict):
    code = "already_reviewed"
    message = "This referral is not waiting for review."


class InsufficientBalance(Conflict):
    code = "insufficient_balance"
    message = "The balance may not go below zero."
