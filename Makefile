# Two commands: `make demo` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision first and pinned: these install from the local disk here.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test setup benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,dicom]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/dvt-staging demo --out demo-output --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

benchmark: $(STAMP)
	$(BIN)/dvt-staging benchmark

clean:
	rm -rf $(VENV) demo-output .pytest_cache
