"""The call-log web page (`python -m telephony web`): read-only pages over the call records.

app.py serves them (aiohttp; only GET and HEAD; a token unless on loopback), query.py turns
a request's query string into a store filter, views.py a record into what a page shows
(numbers masked when MASK_PHONE_NUMBERS is on), charts.py the server-drawn SVG charts.
Every record field reaches the page through Jinja2 with autoescaping: callers write the
transcripts, so nothing in a record is ever markup.
"""
