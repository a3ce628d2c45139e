"""Conformance with BALROG, measured against BALROG's own compiled code.

`balrog_side.py` runs inside a separate virtualenv holding PyPI's `balrog-nle` 0.9.0
(BALROG's NLE fork with its compiled language observation; it needs gym 0.23 and numpy < 2,
so it cannot live beside our nle 1.3.0): it writes BALROG's text for states we recorded, and
BALROG's name of every glyph. `nle_states.py` records the states on our side and compares.
"""
