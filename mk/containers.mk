# Container targets, included by the root Makefile.
#   make images   build every image (offline path when no registry answers; see
#                 scripts/build_images.sh); IMAGES="mlflow serving" builds only those.
#   make env      write .env from .env.example with random secrets (an existing .env is
#                 kept; keys added to .env.example since are appended), and the certificates
#                 of `make certs` when certs/ lacks them.
#   make certs    a local CA and the TLS proxy's server certificate in certs/ (kept when
#                 present and valid; scripts/make_certs.sh --force renews them).
.PHONY: images env certs

IMAGES ?=

images: ## build the stack's images (tags: <name>:<version> and :latest)
	bash scripts/ensure_docker.sh
	bash scripts/build_images.sh $(IMAGES)

env: ## write .env with random secrets for docker compose (keeps an existing one, adds new keys) and certs/
	bash scripts/write_env.sh
	bash scripts/make_certs.sh

certs: ## create the local CA and the TLS proxy's certificate in certs/ (kept when valid)
	bash scripts/make_certs.sh
