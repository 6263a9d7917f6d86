"""The SynapseNet services (A/B testing, data versioning, explainability, ...)."""
