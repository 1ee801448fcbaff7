import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The suite's networks and images are tiny: one intra-op thread is faster than several
    (and far faster on a loaded 2-core machine). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
