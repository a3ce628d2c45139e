# Original code
def nethack_revised(n):
    return {
        "name": "Nethack",
        "description": f"Repairing the original scaffold with Nethack, which allows you to create and edit your own custom Nethack-based game in a single script.",
        "language": "python3.7",
        "authority_id": "nethack12345678901"
    }
