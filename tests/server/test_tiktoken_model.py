"""A model directory whose tokenizer is a tiktoken ranks file (tokenizer.tiktoken with
tiktoken.json: its pattern and special tokens) is served on text: GetModelInfo says tiktoken,
Tokenize follows the ranks, Detokenize inverts it, Generate streams."""
import base64
import json
import signal

import grpc
import pytest
import torch

from tests.client.servers import start_server


def tiny_model(out):
    from training.config import FFN, Attention, Config, LMHead, Norm, Positions
    from training.export import export
    from training.model import PKMTransformer
    torch.manual_seed(0)
    cfg = Config(vocab_size=300, d_model=16, n_layers=1, max_seq_len=64, bos_id=1, eos_id=2,
                 family="llama", dtype="float32", norm=Norm("rmsnorm", 1e-5, False),
                 positions=Positions("rope", theta=10000.0), attention=Attention(2, 1, 8, False),
                 ffn=FFN("swiglu", 32, False), lm_head=LMHead(False, False), memories=[])
    export(PKMTransformer(cfg).eval(), None, out)
    ranks = [bytes([b]) for b in range(256)] + [b"th", b"the"]
    (out / "tokenizer.tiktoken").write_text(
        "".join(f"{base64.b64encode(t).decode()} {i}\n" for i, t in enumerate(ranks)))
    (out / "tiktoken.json").write_text(json.dumps({"pattern": "cl100k",
                                                   "special_tokens": {"<|end|>": 290}}))
    return out


@pytest.fixture(scope="module")
def served(pkmserve, api, tmp_path_factory):
    model = tiny_model(tmp_path_factory.mktemp("tiktoken"))
    proc, address, _ = start_server(pkmserve, "--model", str(model), "--threads", "2",
                                    "--kv-cache-bytes", "4M", "--metrics-listen", "off")
    channel = grpc.insecure_channel(address)
    yield api[1].InferenceStub(channel)
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_text_is_tokenized_by_the_ranks(api, served):
    pb, _ = api
    assert served.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).tokenizer == "tiktoken"
    resp = served.Tokenize(pb.TokenizeRequest(text="the cat<|end|>", add_bos=False), timeout=30)
    # "the" merges th (256) then the (257); " cat" has no merges; the special is its id.
    assert list(resp.ids) == [257, 32, 99, 97, 116, 290]
    text = served.Detokenize(pb.DetokenizeRequest(ids=list(resp.ids)), timeout=30).text
    assert text == "the cat<|end|>"


def test_generate_streams_from_text(api, served):
    pb, _ = api
    msgs = list(served.Generate(pb.GenerateRequest(text="the", max_new_tokens=3, ignore_eos=True,
                                                   temperature=0), timeout=60))
    assert sum(len(m.tokens) for m in msgs) == 3
    assert msgs[-1].usage.prompt_tokens == 2  # BOS and "the"
