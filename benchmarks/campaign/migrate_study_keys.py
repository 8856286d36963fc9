"""Rename an Optuna sqlite study's parameters from pre-refactor keys to today's, in place.

The campaign's search study (10 trials) was recorded when the guide's settings were `loss.*` and
`sampler.*`; the search config now names them `method.*`, `method.sampler.*` and
`stages.student.method.*`. TPE models each parameter by name, so without the rename new trials
would ignore the old ones. Values and distributions are unchanged (the refactor moved keys,
not meanings: the method's runs reproduce bit for bit across it). A copy of the database is kept
beside it as <name>.legacy_keys.db.

python benchmarks/campaign/migrate_study_keys.py outputs/campaign_search.db
"""

import argparse
import shutil
import sqlite3
from pathlib import Path

from legacy_keys import current

parser = argparse.ArgumentParser()
parser.add_argument("database", type=Path)
args = parser.parse_args()
backup = args.database.with_suffix(".legacy_keys.db")
if not backup.exists():
    shutil.copy2(args.database, backup)
with sqlite3.connect(args.database) as connection:
    names = [row[0] for row in connection.execute("SELECT DISTINCT param_name FROM trial_params")]
    for name in names:
        if current(name) != name:
            connection.execute(
                "UPDATE trial_params SET param_name = ? WHERE param_name = ?", (current(name), name)
            )
            print(f"{name} -> {current(name)}")
print(f"kept the original as {backup}")
