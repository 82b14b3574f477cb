"""check_texts: the one check of raw texts that the API and every text model share."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError
from xmc.utils.validation import check_texts


def test_texts_are_a_list_of_str_and_one_str_is_one_text():
    assert check_texts("one text") == ["one text"]
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(t for t in "xy") == ["x", "y"]


@pytest.mark.parametrize("texts, who, message", [
    (["a", 3], None, "expected texts (str); item 1 is a int"),
    ([b"a"], "lightxml", "lightxml takes texts (str); item 0 is a bytes"),
    (sp.csr_matrix(np.eye(2)), "xr-transformer", "xr-transformer takes texts (a list of str), not a feature matrix"),
    (np.array(["a"]), None, "expected texts (a list of str), not a feature matrix"),
])
def test_anything_else_is_named(texts, who, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_texts(texts, who)
