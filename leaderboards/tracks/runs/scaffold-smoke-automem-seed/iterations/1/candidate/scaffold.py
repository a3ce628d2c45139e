import re
from __future__ import print_function
# from netHack.api.scaffold.RewriteScaffoldSeed-Log to add a new step with the same name but without any steps, and it will raise an error if you do not provide a scaffold.
def create_new_step(name):
    return {
        "type": "Step",
        "description": f"The new step is a custom step that can be used to enhance the current task.",
        "action": action() + "_createNewStep",
        "path": path(),
        "requiresArgs": ["nethack.api.scaffold.RewriteScaffoldSeed-Log"]
    }
# create_new_step(name="Create a new step")
