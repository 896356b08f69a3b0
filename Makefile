# The two set-up commands: `make demo` (the main job) and `make test` (every test).
.PHONY: demo test models bench-core bench-serve bench-model-server bench-wasm

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

models:
	bash scripts/fetch-models.sh

bench-core:
	bash scripts/bench-core.sh

bench-serve:
	bash scripts/bench-serve.sh

bench-model-server:
	bash scripts/bench-model-server.sh

bench-wasm:
	bash akidb-wasm/tests/bench.sh
