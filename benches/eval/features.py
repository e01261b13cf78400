"""The four side features both benchmarks give the head (prepare.py for
the evaluation, benches/loop/sim.py for the loop): the item's smoothed
positive rate and log count, then the user's, each from events strictly
earlier than the one featurised."""

import math


def side_features(item_n, item_p, user_n, user_p):
    return [(item_p + 1) / (item_n + 2), math.log1p(item_n) / math.log1p(600),
            (user_p + 1) / (user_n + 2), math.log1p(user_n) / math.log1p(700)]
