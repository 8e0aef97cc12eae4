"""longvq_data: preparation of the data sets LongVQ models are trained and evaluated on.

  cd tools && /usr/bin/python3 -m longvq_data prepare {austen,listops,fashion,all} [--root ../data]
  cd tools && /usr/bin/python3 -m longvq_data make-slices

Outputs go to <repo>/data (git-ignored): austen/{train,val,test}.txt, listops/{train,val,test}.tsv,
fashion/ (plain IDX files). tests/data holds small committed slices for CI.
"""
from .common import DEFAULT_ROOT, DataError

__all__ = ["DEFAULT_ROOT", "DataError"]
