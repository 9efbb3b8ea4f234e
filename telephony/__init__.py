"""The phone-call domain: settings, who is on the line, dialing, transfer, hang-up.

Nothing here imports agent.py or tools/: arrows point agent.py -> tools -> telephony.
"""
