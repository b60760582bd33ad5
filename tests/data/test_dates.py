import pytest

from squall.data.dates import frequency_to_string, frequency_to_timedelta


def test_frequencies_read_and_write_like_anemoi():
    assert frequency_to_timedelta("6h").total_seconds() == 21600
    assert frequency_to_timedelta("1d").total_seconds() == 86400
    assert frequency_to_timedelta(6).total_seconds() == 21600  # bare int: hours
    assert frequency_to_string(frequency_to_timedelta("360m")) == "6h"
    with pytest.raises(ValueError, match="cannot read frequency"):
        frequency_to_timedelta("six hours")
