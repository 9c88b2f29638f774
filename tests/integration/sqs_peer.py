"""An SQS-compatible peer for the asynchronous-invocation tests: moto's server, run as a
subprocess on a free port. Queues created here are what Lamina's SQS destinations and
dead-letter queues deliver to (through LAMINA_SQS_ENDPOINT)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.conftest import REGION, free_port

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


class SqsPeer:
    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)
        self.sqs = boto3.client("sqs", endpoint_url=self.url, region_name=REGION, aws_access_key_id="test",
                                aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 2}))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def queue(self, name: str) -> tuple[str, str]:
        """Create a queue; returns (url, arn)."""
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def receive(self, url: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait for at least `count` messages (deleting them); returns all received so far."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                              MessageAttributeNames=["All"])
            for message in answer.get("Messages", []):
                got.append(message)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return got

    def bodies(self, url: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        return [json.loads(m["Body"]) for m in self.receive(url, count, timeout)]
