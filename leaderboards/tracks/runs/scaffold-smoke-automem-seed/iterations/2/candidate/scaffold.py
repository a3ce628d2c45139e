# Original scaffold.py
def create_scaffold(game):
    """Create a new scaffold"""

    return {
        "name": game,
        "role": "system",  # This is the default role of the game
        "content": "", 
        "last_update": datetime.datetime.utccron("2018-04-30T19:56:57.14Z"),
    }

def create_scaffold(game, name):
    return {
        "name": game,
        "role": "system",  # This is the default role of the game
        "content": "", 
        "last_update": datetime.datetime.utccron("2018-04-30T19:56:57.14Z"),
    }
