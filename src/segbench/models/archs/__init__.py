"""One torch-free declaration per architecture, the file named after it (`arch: unet` ->
archs/unet.py): its options dataclass, the tasks it has heads for and the module that builds it.

segbench.models.registry imports a declaration by name when params name the architecture, so
validating params reads only the declarations it needs, and a model's DVC stages depend on its
own architecture's files only (stage `model_code`, segbench.models.code), never on the others'.
"""
