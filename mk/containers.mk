# Container targets, included by the root Makefile.
#   make images   build every image (offline path when no registry answers; see
#                 scripts/build_images.sh); IMAGES="mlflow serving" builds only those.
#   make env      write .env from .env.example with random secrets (kept if it exists).
.PHONY: images env

IMAGES ?=

images: ## build the stack's images (tags: <name>:<version> and :latest)
	bash scripts/ensure_docker.sh
	bash scripts/build_images.sh $(IMAGES)

# Every empty KEY= line of .env.example gets a random value: hex for passwords and tokens
# (safe inside URLs), url-safe base64 of 32 bytes for the Fernet key.
env: ## write .env with random secrets for docker compose (never overwrites it)
	@if [ -e .env ]; then echo ".env exists: kept (delete it to generate new secrets)"; exit 0; fi; \
	umask 077; \
	while IFS= read -r line || [ -n "$$line" ]; do \
	  case "$$line" in \
	    *FERNET_KEY=) echo "$$line$$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')" ;; \
	    [A-Z]*=) echo "$$line$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" ;; \
	    *) echo "$$line" ;; \
	  esac; \
	done < .env.example > .env; \
	echo "wrote .env with new random secrets"
