# `make k8s-check`, included by the root Makefile and run by `make test`: the Kubernetes
# manifests of deploy/kubernetes/ (issue #19), offline (no cluster here), under a minute warm:
#   1. every overlay renders with kubectl's kustomize (placeholder secrets, see render.py);
#   2. every rendered object validates, strict, against Kubernetes 1.32's OpenAPI schemas
#      (kubernetes-validate) and the RayCluster against KubeRay v1.7.0's vendored CRD schema;
#   3. checkov's Kubernetes checks pass (skips below, each with its reason);
#   4. the contract test holds images, ports, env names and probes equal to docker-compose.yml.
.PHONY: k8s-check k8s-render k8s-validate k8s-checkov k8s-contract k8s-secrets

# The local overlay's Secret source: a copy of .env inside the kustomization's folder, where
# `kubectl apply -k` may read it (git-ignored, mode 0600).
k8s-secrets: ## copy .env to deploy/kubernetes/overlays/local/secrets.env for kubectl apply -k
	@test -f .env || { echo "no .env: run make env first" >&2; exit 1; }
	install -m 600 .env $(K8S_DIR)/overlays/local/secrets.env
	@echo "wrote $(K8S_DIR)/overlays/local/secrets.env (git-ignored)"

K8S_VENV := $(VENVS)/k8s
K8S_DIR := deploy/kubernetes
K8S_OUT := $(ROOT)/build/k8s
K8S_OVERLAYS := local production
K8S_RENDERED := $(foreach o,$(K8S_OVERLAYS),$(K8S_OUT)/$(o).yaml)
# checkov's Kubernetes checks we do not apply, each with its reason:
# image by digest: the tags are those `make images` builds on the machine; a digest exists only
# once pushed to a registry (pin it then: `kustomize edit set image
# mlops/ml-serving-service@sha256:...`, see deploy/kubernetes/README.md).
K8S_SKIP_DIGEST := CKV_K8S_43
# imagePullPolicy Always: a local cluster runs images loaded into it (kind load, minikube image
# load) with no registry to pull from; the tags are versions that never move.
K8S_SKIP_PULL_ALWAYS := CKV_K8S_15
# secrets as files: the services read their settings from the environment, as in
# docker-compose.yml; the values come from Secret references (never from the manifests), and
# Airflow's connections and the database URLs are composed of several of them.
K8S_SKIP_SECRET_ENV := CKV_K8S_35

$(K8S_VENV)/.installed: $(K8S_DIR)/checks/requirements.txt
	test -x $(K8S_VENV)/bin/python || $(PYTHON) -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install -q -r $<
	touch $@

k8s-check: k8s-validate k8s-checkov k8s-contract ## Kubernetes manifests: render, validate (strict), checkov, contract test (part of make test)

k8s-render:
	@echo "== k8s: kubectl kustomize of overlays $(K8S_OVERLAYS)"
	cd $(ROOT) && $(PYTHON) $(K8S_DIR)/checks/render.py $(K8S_OVERLAYS) --out $(K8S_OUT)

k8s-validate: k8s-render $(K8S_VENV)/.installed
	@echo "== k8s: schemas of Kubernetes 1.32 and KubeRay v1.7.0, strict"
	cd $(ROOT) && $(K8S_VENV)/bin/python $(K8S_DIR)/checks/validate.py $(K8S_RENDERED)

k8s-checkov: k8s-render $(VENVS)/security/.installed
	@echo "== k8s: checkov's Kubernetes checks"
	cd $(ROOT) && $(VENVS)/security/bin/checkov --quiet --compact --skip-download \
		--framework kubernetes --skip-check $(K8S_SKIP_DIGEST),$(K8S_SKIP_PULL_ALWAYS),$(K8S_SKIP_SECRET_ENV) $(addprefix -f ,$(K8S_RENDERED))

k8s-contract: setup-integration-tests
	@echo "== k8s: manifests against docker-compose.yml"
	cd $(ROOT)/integration-tests && $(VENVS)/integration-tests/bin/python -m pytest -q \
		tests/contracts/test_kubernetes_manifests.py
