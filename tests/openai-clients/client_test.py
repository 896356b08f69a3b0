"""The official Python client, defaults only (base64 on the wire), against akidb serve."""
import json
import math
import os
import sys
import urllib.request

import openai

base = os.environ["AKIDB_BASE"]
texts = ["The quick brown fox jumps over the lazy dog.", "Ein kleiner Satz auf Deutsch.", "東京は日本の首都です。"]

client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed")
got = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
request = urllib.request.Request(f"{base}/v1/embed", data=json.dumps({"texts": texts}).encode(),
                                 headers={"content-type": "application/json"})
want = json.load(urllib.request.urlopen(request))["embeddings"]

assert len(got.data) == len(texts), got
for i, (item, expected) in enumerate(zip(got.data, want)):
    assert item.index == i, item.index
    assert len(item.embedding) == 384, len(item.embedding)
    diff = max(abs(a - b) for a, b in zip(item.embedding, expected))
    assert diff <= 1e-6, f"text {i}: differs from /v1/embed by {diff}"
    assert abs(math.sqrt(sum(x * x for x in item.embedding)) - 1) < 1e-5
assert got.usage.prompt_tokens > 0

try:
    client.embeddings.create(model="all-MiniLM-L6-v2", input="x", dimensions=64)
    sys.exit("dimensions=64 was accepted")
except openai.UnprocessableEntityError as e:
    assert "fixed size of 384" in str(e), e
print("python openai", openai.__version__, ": ok")
