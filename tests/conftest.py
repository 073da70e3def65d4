"""pytest set-up shared by every test file.

Plots made inside the test process (tests of transformer_np.viz) use matplotlib's
non-interactive Agg backend: no window opens, on any machine. The notebooks run by nbmake are
NOT affected: the environment is left alone, so their kernels keep ipykernel's default inline
backend, which is headless too and keeps the figures in the executed notebooks.
"""


def pytest_configure(config):
    try:
        import matplotlib
    except ImportError:  # matplotlib is optional (the "plots" extra)
        return
    matplotlib.use("Agg")
