function n = height(t)
if isempty(t.cols)
  n = 0;
else
  n = numel(t.cols{1});
end
end
