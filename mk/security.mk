# `make security`, included by the root Makefile and run by `make test`. Offline, under 2 min:
#   1. ruff's flake8-bandit rules (S) over the services' code, the DAGs and scripts/;
#   2. checkov over every Dockerfile (and a secrets scan of those and docker-compose.yml);
#   3. our compose policy (scripts/security/compose_policy.py): checkov has no Compose
#      framework; loopback-only ports, no privileged/host namespaces/docker.sock, required
#      secrets, pinned images;
#   4. the attack tests (integration-tests/tests/attacks) against the real processes.
#
# Why ruff's S rules and not bandit: ruff (pinned in every venv) already implements bandit's
# checks as the S rules, runs in well under a second, and reads each subtree's own ruff config,
# so a finding is suppressed the way every other lint finding is, `# noqa: S603` with the
# reason beside it. bandit would add a second tool and suppression syntax. bandit's B614
# (torch.load) has no S rule, so ruff's banned-api (TID251) bans torch.load and pickle loads
# here: a model is loaded without unpickling (see ml-serving-service's mlmodel.py).
.PHONY: security security-static security-checkov security-compose security-attacks

SECURITY_VENV := $(VENVS)/security
SECURITY_PYTHON := $(VENVS)/integration-tests/bin/python
SECURITY_RUFF := $(VENVS)/integration-tests/bin/ruff
SECURITY_PATHS := ml-training-service/src ml-serving-service/src airflow-orchestrator/dags scripts
# `ruff --config` overrides add to each subtree's own config (found beside each file).
SECURITY_BANNED := $(foreach api,torch.load pickle.load pickle.loads cloudpickle.load cloudpickle.loads dill.load dill.loads joblib.load,--config "lint.flake8-tidy-imports.banned-api.'$(api)'.msg = 'unpickles: runs code from the file'")
# Every Dockerfile git knows of (tracked or about to be), wherever a new one lands.
DOCKERFILES = $(shell cd $(ROOT) && git ls-files --cached --others --exclude-standard -- '*Dockerfile' | sort -u)

# checkov in a venv of its own (its dependency tree is large), from a pinned full lock.
$(SECURITY_VENV)/.installed: scripts/security/requirements.txt
	test -x $(SECURITY_VENV)/bin/python || $(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install -q -r $<
	touch $@

security: security-static security-checkov security-compose security-attacks ## ruff S rules, checkov, compose policy, attack tests (part of make test)

security-static: setup-integration-tests
	@echo "== security: ruff S (flake8-bandit) and banned unpickling calls over $(SECURITY_PATHS)"
	@cd $(ROOT) && $(SECURITY_RUFF) check --no-cache --output-format concise --select S,TID251 $(SECURITY_BANNED) $(SECURITY_PATHS)

# --skip-download: no call to the vendor's API (offline, no key); every skip is a
# `# checkov:skip=ID: reason` comment in the Dockerfile it applies to.
security-checkov: $(SECURITY_VENV)/.installed
	@echo "== security: checkov over $(words $(DOCKERFILES)) Dockerfiles and docker-compose.yml"
	@test -n "$(DOCKERFILES)" || { echo "no Dockerfile found"; exit 1; }
	cd $(ROOT) && $(SECURITY_VENV)/bin/checkov --quiet --compact --skip-download \
		--framework dockerfile secrets $(addprefix -f ,$(DOCKERFILES)) -f docker-compose.yml

security-compose: setup-integration-tests
	@echo "== security: compose policy over docker-compose.yml"
	cd $(ROOT) && $(SECURITY_PYTHON) -m scripts.security.compose_policy docker-compose.yml

security-attacks: setup-integration-tests
	@echo "== security: attack tests (integration-tests/tests/attacks)"
	cd $(ROOT)/integration-tests && $(SECURITY_PYTHON) -m pytest tests/attacks
