# The two set-up commands: `make demo` (the main job) and `make test` (every test).
.PHONY: demo test bench-core models

demo: models
	@echo "Embedding a sentence with the int8 bundle:"
	./target/release/akidb embed --bundle models/all-MiniLM-L6-v2/int8 "AkiDB Edge runs the same core everywhere." | cut -c1-120
	@echo "..."

test:
	bash scripts/test.sh

models:
	bash scripts/fetch-models.sh

bench-core:
	bash scripts/bench-core.sh
