from core.infra.errors import Conflict, NotFound


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    message = "No campaign with this key."


class CampaignKeyTaken(Conflict):
    code = "campaign_key_taken"
    message = "A campaign with this key exists."


class CampaignNotActive(Conflict):
    code = "campaign_not_active"
    message = "This referral code's campaign is not running."


class DefaultCampaign(Conflict):
    code = "default_campaign"
    message = "The default campaign cannot be ended."
