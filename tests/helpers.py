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
