from modules.gates.g0 import g0


def test_undeclared_file():
    assert g0({'assets': []}, ['x']) == ['x']
