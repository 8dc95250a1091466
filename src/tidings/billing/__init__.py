"""What businesses' messages cost: charges per delivered template and cost totals."""
