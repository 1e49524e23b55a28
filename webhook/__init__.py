"""The admission webhook: AdmissionReview v1 over HTTPS, served by gunicorn."""
