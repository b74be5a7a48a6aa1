# The README's commands. Every target installs what it needs first (scripts/bootstrap).
SHELL := /bin/bash
ENV := . scripts/env.sh &&

.PHONY: bootstrap demo test quick unit sanity lint molecule realkernel scale lab-down build docs ee

bootstrap:
	@scripts/bootstrap

## The main job on the built-in lab: boot the guests, harden, take a fleet-wide `w` dump, shut down.
demo: bootstrap
	scripts/demo

## The whole suite: unit, sanity, lint, Molecule scenarios, real-kernel tests.
test: bootstrap
	$(ENV) scripts/test-all

## Inner loop: unit tests and lint only (about a minute).
quick: bootstrap unit lint

unit: bootstrap
	$(ENV) python -m pytest -q tests/unit

sanity: bootstrap
	scripts/sanity

lint: bootstrap
	$(ENV) ansible-lint --profile production

molecule: bootstrap
	$(ENV) scripts/molecule-all

realkernel: bootstrap
	$(ENV) python -m pytest -q -p no:cacheprovider tests/realkernel

## The 50-kernel user-mode-linux fleet's correctness test alone (a stage of `make test` too).
scale: bootstrap
	$(ENV) python -m pytest -q -rs tests/scale

lab-down:
	$(ENV) python -m tests.lab down

build: bootstrap
	$(ENV) ansible-galaxy collection build --force --output-path .build

## The docs linter docs.ansible.com runs, and the collection's HTML docs (antsibull-docs + Sphinx) in .build/docs/html.
docs: bootstrap
	scripts/docs

## The execution environment (ansible-builder, local Debian base image), as magic-sysrq/ee:latest.
ee: bootstrap
	$(ENV) scripts/ee-image
