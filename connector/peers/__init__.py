"""Mock peers on loopback: a Customs risk engine and the test PKI they share with the connector.

They are real HTTPS servers that speak the connector's XML and sign and verify for real; the
integration tests, ``ead-connector demo`` and the benchmarks run the connector against them.
Never use them, or their keys, in production.
"""
