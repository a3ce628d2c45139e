# The response contains a `'FILE: scaffold.py'` error, which is not allowed in Python 3.10 or later.
def get_response():
    return {
        'Content-Type': 'text/html',
        'User-Agent': 'Mozilla/5.0 (Windows NT 100) AppleWebKit14.2 (KHTML, like Gecko) Chrome 13.0.6987.js Safari 3.0.11.#aamd'
    }
