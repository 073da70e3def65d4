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


# -- every model any test builds is counted twice ------------------------------------------------
# models/counting.py computes the parameter count from the configuration alone; this checks it
# against the built model's own parameters for every GPT and Transformer constructed anywhere in
# the test session (a new configuration field that changes a layer cannot silently break it).
import pytest  # noqa: E402

MODELS_COUNTED = []


@pytest.fixture(autouse=True, scope="session")
def _count_every_built_model():
    from transformer_np.models import GPT, Transformer
    from transformer_np.models.bert import Bert
    from transformer_np.models.counting import count_parameters, parameter_count

    originals = {cls: cls.__init__ for cls in (GPT, Transformer, Bert)}

    def counted(cls):
        def __init__(self, *args, **kwargs):
            originals[cls](self, *args, **kwargs)
            for non_embedding in (False, True):
                formula = parameter_count(self.config, non_embedding=non_embedding)
                built = count_parameters(self, non_embedding=non_embedding)
                assert formula == built, (
                    f"parameter_count({self.config}, non_embedding={non_embedding}) = {formula}, "
                    f"but the built model has {built}"
                )
            MODELS_COUNTED.append(self.config)
        return __init__

    for cls in originals:
        cls.__init__ = counted(cls)
    yield
    for cls, init in originals.items():
        cls.__init__ = init
