"""Runs Presidio's predefined pattern recognizers over the corpus, in the bench's own
Presidio environment (never Custos's): no NLP model, nothing downloaded.

Protocol on stdin and stdout, one line each: first {"texts": [...]} (answered "ready");
then "round" runs every text once and answers the wall-clock and CPU seconds it took
("<wall> <cpu>"), so that the benchmark can interleave rounds with its own; "predictions"
answers [[[type, start, end, score], ...], ...] and ends. The AnalyzerEngine gets an NLP
engine that produces no tokens and no entities, so only the pattern recognizers (with their
validation: Luhn, IBAN checksum, phonenumbers) decide, as Presidio does without a spaCy
model.
"""

from __future__ import annotations

import json
import sys
import time

import tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

TYPES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "US_SSN": "ssn",
    "CREDIT_CARD": "credit_card",
    "IP_ADDRESS": "ip_address",
    "IBAN_CODE": "iban",
}


class NoNlpEngine(NlpEngine):
    """No model: no tokens, no lemmas, no named entities."""

    def load(self) -> None:
        pass

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text, language):
        return NlpArtifacts(
            entities=[],
            tokens=[],
            tokens_indices=[],
            lemmas=[],
            nlp_engine=self,
            language=language,
        )

    def process_batch(self, texts, language, batch_size=1, n_process=1, **kwargs):
        for text in texts:
            yield text, self.process_text(text, language)

    def is_stopword(self, word, language):
        return False

    def is_punct(self, word, language):
        return False

    def get_supported_entities(self):
        return []

    def get_supported_languages(self):
        return ["en"]


def main() -> None:
    # Offline: the email recognizer's domain check uses tldextract, whose default fetches
    # the public suffix list over the network; the snapshot it ships is used instead.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    texts = json.loads(sys.stdin.readline())["texts"]
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        EmailRecognizer(),
        PhoneRecognizer(),
        UsSsnRecognizer(),
        CreditCardRecognizer(),
        IpRecognizer(),
        IbanRecognizer(),
    ):
        registry.add_recognizer(recognizer)
    engine = AnalyzerEngine(registry=registry, nlp_engine=NoNlpEngine(), supported_languages=["en"])
    entities = list(TYPES)
    engine.analyze(text=texts[0], language="en", entities=entities)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            started, cpu = time.perf_counter(), time.process_time()
            for text in texts:
                engine.analyze(text=text, language="en", entities=entities)
            print(time.perf_counter() - started, time.process_time() - cpu, flush=True)
        elif command == "predictions":
            predictions = [
                [
                    [TYPES[r.entity_type], r.start, r.end, r.score]
                    for r in engine.analyze(text=text, language="en", entities=entities)
                ]
                for text in texts
            ]
            print(json.dumps(predictions), flush=True)
            return


if __name__ == "__main__":
    main()
