"""The claim's model is a prediction that can fail: the calibration predicts each saving
from fewer syscalls and switches; the sentence says whether the measured interval holds
it, and what it missed is called its error, not a part of the saving."""

from __future__ import annotations

from bench.analysis.claim import Decomposition, evaluate_claim
from bench.analysis.stats import Interval
from bench.results.run import Run
from tests.test_results import BASE


def test_a_prediction_holds_only_inside_the_measured_interval() -> None:
    parts = Decomposition(True, "", 2.0, 100.0, 1.0, 5000.0, 200.0, 5000.0, 800.0)
    assert parts.predicted == 5200.0
    assert parts.held(Interval(5000.0, 6000.0))
    assert not parts.held(Interval(5300.0, 6000.0))
    assert not Decomposition(False, "not calibrated").held(Interval(-1e9, 1e9))


def test_every_pair_sentence_says_whether_its_prediction_held() -> None:
    claim = evaluate_claim(Run.load(BASE))
    judged = [p for p in claim.pairs if p.rtt_parts.available]
    assert judged, "the fixture has calibrated pairs"
    for p in judged:
        sentence = p.sentences[1]
        assert sentence.startswith("The calibration predicts an RTT difference of")
        held = p.rtt_parts.held(p.rtt.ci)
        assert ("the prediction held" in sentence) is held, sentence
        assert ("the prediction failed, off by" in sentence) is (not held), sentence
        assert "is the rest" not in sentence
