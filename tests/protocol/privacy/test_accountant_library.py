"""dp-accounting imported without its package ``__init__``: same numbers, lighter start-up."""

import json
import subprocess
import sys

SPENDS = [{"type": "gaussian", "sigma": 4.0, "count": 2},
          {"type": "sampled_gaussian", "q": 0.25, "sigma": 1.2, "count": 100}]

LAZY = """
import json, sys
from fedcondense.protocol.privacy import accounting
spends = json.loads(sys.argv[1])
heavy = [m for m in ("dp_accounting.pld", "dp_accounting.mechanism_calibration", "scipy.stats",
                     "scipy.signal") if m in sys.modules]
rdp = accounting.epsilon_spent(spends, 1e-5)
pld = accounting.epsilon_spent(spends, 1e-5, "pld")
import dp_accounting
event = dp_accounting.GaussianDpEvent(2.0)  # a re-exported name: the package __init__ runs
print(json.dumps({"heavy": heavy, "rdp": rdp, "pld": pld, "event": type(event).__name__}))
"""

EAGER = """
import json, sys
import dp_accounting  # the whole package first, as any other program would
from fedcondense.protocol.privacy import accounting, accountant_library
spends = json.loads(sys.argv[1])
assert accountant_library.install() is dp_accounting
print(json.dumps({"rdp": accounting.epsilon_spent(spends, 1e-5),
                  "pld": accounting.epsilon_spent(spends, 1e-5, "pld")}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, json.dumps(SPENDS)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_accounting_skips_the_package_init_and_gives_the_same_epsilon():
    lazy, eager = _run(LAZY), _run(EAGER)
    assert lazy["heavy"] == []  # PLD, calibration and scipy.stats/signal not imported
    assert lazy["rdp"] == eager["rdp"] and lazy["pld"] == eager["pld"]
    assert 1.0 < lazy["rdp"] < 50.0 and lazy["pld"] <= lazy["rdp"]
    assert lazy["event"] == "GaussianDpEvent"


def test_unknown_name_is_still_an_attribute_error():
    from fedcondense.protocol.privacy import accountant_library

    pkg = accountant_library.install()
    try:
        pkg.no_such_name_here
    except AttributeError as err:
        assert "no_such_name_here" in str(err)
    else:  # pragma: no cover
        raise AssertionError("a missing name must raise AttributeError")
