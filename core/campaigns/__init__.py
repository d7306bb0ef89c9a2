"""Campaigns: the referral programs one business runs side by side, each with its rules."""
