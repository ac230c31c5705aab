"""Business rules, each defined once as named data; engine expressions (Spark SQL, DuckDB SQL, numpy) are generated
from these definitions, never rewritten.

    lifetimes.py    segment lifetime (24 h), cleanup grace (1 h), Seen By lifetime (48 h), pending-view wait (48 h)
    views.py        when a seen receipt counts as a view (completion 1 or >= 3 s)
    audience.py     who may see a segment: flags, relationship -> flag derivation, denial reasons
    tray_score.py   the tray's ranking score and its named weights

Table retention periods are the contracts' `retention` SLA (data_contracts/).
"""
