"""Small tools shared by several test files."""


def record_backward_calls(layer, names):
    """Wrap the backward of each named child so that calling it appends the child's name to a list."""
    calls = []
    for name in names:
        child = getattr(layer, name)

        def recorded(dy, name=name, backward=child.backward):
            calls.append(name)
            return backward(dy)

        child.backward = recorded
    return calls


class StubModel:
    """The train/eval switch of a Module, for hand-built stand-in models in decoding tests."""

    training = True

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)


def train_tiny(path, recipe, steps, **defaults):
    """Run the train command on ``recipe`` with some of its defaults replaced (settings the command
    line does not expose, e.g. the model's size), then put the defaults back."""
    from transformer_np.__main__ import main
    from transformer_np.recipes import RECIPES

    saved = dict(RECIPES[recipe].defaults)
    RECIPES[recipe].defaults.update(defaults)
    try:
        assert main(["train", "--task", recipe, "--steps", str(steps), "--batch-size", "4", "--quiet",
                     "--checkpoint", str(path)]) == 0
    finally:
        RECIPES[recipe].defaults.clear()
        RECIPES[recipe].defaults.update(saved)
    return path
