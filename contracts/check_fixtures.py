"""Independent check of the contracts with Python's `jsonschema`.

Every schema under contracts/schemas must be valid draft 2020-12, and this
validator must agree with the fixtures' split: every file under
fixtures/<subject>/v<N>/valid is accepted by schemas/<subject>.v<N>.json and every
file under .../invalid is rejected. Checked twice: with formats asserted and with
formats as mere annotations (the draft's default), so the schemas do not depend
on a validator's optional format support. Exits non-zero on any disagreement.
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator, FormatChecker

ROOT = pathlib.Path(__file__).resolve().parent


def main() -> int:
    failures = []
    checked = 0
    schemas = sorted((ROOT / "schemas").glob("*.json"))
    if not schemas:
        failures.append("no schemas found")
    for schema_path in schemas:
        schema = json.loads(schema_path.read_text())
        Draft202012Validator.check_schema(schema)
        subject, version = schema_path.name.removesuffix(".json").rsplit(".v", 1)
        fixtures = ROOT / "fixtures" / subject / f"v{version}"
        for mode, checker in (("formats asserted", FormatChecker()), ("formats annotated", None)):
            validator = Draft202012Validator(schema, format_checker=checker)
            for expect_valid in (True, False):
                folder = fixtures / ("valid" if expect_valid else "invalid")
                files = sorted(folder.glob("*.json"))
                if not files:
                    failures.append(f"{folder}: no fixtures")
                for fixture in files:
                    checked += 1
                    errors = list(validator.iter_errors(json.loads(fixture.read_text())))
                    if expect_valid and errors:
                        failures.append(f"{fixture.relative_to(ROOT)} ({mode}): rejected: {errors[0].message}")
                    if not expect_valid and not errors:
                        failures.append(f"{fixture.relative_to(ROOT)} ({mode}): accepted")
    for failure in failures:
        print(f"FAIL {failure}")
    print(f"python jsonschema: {len(schemas)} schemas, {checked} fixture checks")
    print(f"{checked - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
