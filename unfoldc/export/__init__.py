"""`unfoldc export`: a built network as ONNX or a torch.export archive (.pt2).

`exporter.py` does the work (it imports torch), `onnx_ops.py` translates the operators
torch.onnx lacks, `locate.py` traces a failure back to the spec line, `cli.py` is the command.
Importing this package imports nothing else, so that `unfoldc compile` never loads torch.
"""
