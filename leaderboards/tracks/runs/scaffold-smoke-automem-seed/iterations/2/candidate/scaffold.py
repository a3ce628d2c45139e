# Scaffold.py: 16: syntax error: closing parenthesis '[' on line 3
  import re

  def takeoffall():
    return [
      {
        "name": "",
        "description": "",
        "location": None,
        "image_url": ""
      },
      {
        "name": "",
        "description": "",
        "location": None,
        "image_url:Nonexistent"
      } for n in range(n + 1)
    ]
