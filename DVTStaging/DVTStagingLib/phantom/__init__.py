"""The synthetic BTI phantom (docs/phantom.md): labeled thigh studies with the clinical cues of each stage."""
