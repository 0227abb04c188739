# Container targets, included by the root Makefile.
#   make images   build every image (offline path when no registry answers; see
#                 scripts/build_images.sh); IMAGES="mlflow serving" builds only those.
#   make env      write .env from .env.example with random secrets (an existing .env is
#                 kept; keys added to .env.example since are appended).
.PHONY: images env

IMAGES ?=

images: ## build the stack's images (tags: <name>:<version> and :latest)
	bash scripts/ensure_docker.sh
	bash scripts/build_images.sh $(IMAGES)

env: ## write .env with random secrets for docker compose (keeps an existing one, adds new keys)
	bash scripts/write_env.sh
