"""The seed papers reproduced: experiments, Bit Budget, results page and its plots."""
