"""Local Apache Kafka and Apache Cassandra for development and tests, fetched from Maven Central.

No Docker engine runs on the machines this project is built on, so both servers are fetched as
jars with Maven (see ``maven/*/pom.xml``) and started with plain ``java -cp``.
"""
