"""Pretraining (FactoST-v2 stage I): the KernelSynth generator, the offline corpus and the UTP loop."""
